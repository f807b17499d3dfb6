/* Allocate and touch N MiB, one MiB at a time, printing progress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    for (int i = 1; i <= n; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %d MiB\n", i); return 1; }
        memset(p, 'a', 1 << 20);
        if (i % 10 == 0) { printf("%d MiB\n", i); fflush(stdout); }
    }
    printf("survived\n");
    return 0;
}
