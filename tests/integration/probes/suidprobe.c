/* Installed setuid root (mode 4755) and run as an ordinary user: prints the
 * real and effective ids and the effective capabilities (security-baseline
 * P10). With no_new_privs the exec must not raise euid to 0.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char line[256];
    printf("ruid=%d euid=%d rgid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid());
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "NoNewPrivs:", 11)) fputs(line, stdout);
    if (f) fclose(f);
    return 0;
}
