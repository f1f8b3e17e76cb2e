/* A slower disk's sync, for bench/reads_during_intake.py --fsync-delay-ms: loaded with
 * LD_PRELOAD into the hub's process, every fsync() and fdatasync() returns
 * SLOW_FSYNC_MS milliseconds later than the disk answered (SQLite syncs its WAL at each
 * commit and the database file at each checkpoint). Built by the bench with the
 * machine's C compiler; nothing of the hub depends on it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slower(void) {
    const char *value = getenv("SLOW_FSYNC_MS");
    long ms = value ? atol(value) : 0;
    if (ms > 0) {
        struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int result = real(fd);
    slower();
    return result;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int result = real(fd);
    slower();
    return result;
}
