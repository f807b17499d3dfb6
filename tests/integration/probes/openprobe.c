/* Open files and report the result; NEVER reads or writes them.
 *
 * usage: openprobe [-r|-w] PATH...   (-w, the default: O_WRONLY; -r: O_RDONLY)
 * prints "PATH ok" or "PATH errno=N (message)" for each PATH.
 * Shows that /proc/sys/kernel/core_pattern and /sys files cannot even be
 * opened for writing inside a container (security-baseline P4), and whether
 * a device node can be opened at all (P14).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int flags = O_WRONLY;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r")) { flags = O_RDONLY; continue; }
        if (!strcmp(argv[i], "-w")) { flags = O_WRONLY; continue; }
        int fd = open(argv[i], flags | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) { printf("%s ok\n", argv[i]); close(fd); }
        else printf("%s errno=%d (%s)\n", argv[i], errno, strerror(errno));
    }
    return 0;
}
