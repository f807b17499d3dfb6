/* Open a file for writing and report the result; NEVER writes.
 *
 * usage: openprobe PATH...   prints "PATH ok" or "PATH errno=N (message)"
 * Used to show that /proc/sys/kernel/core_pattern and /sys files cannot
 * even be opened for writing inside a container (security-baseline P4).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_CLOEXEC);
        if (fd >= 0) { printf("%s ok\n", argv[i]); close(fd); }
        else printf("%s errno=%d (%s)\n", argv[i], errno, strerror(errno));
    }
    return 0;
}
