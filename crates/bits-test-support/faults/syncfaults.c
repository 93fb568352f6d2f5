/*
 * A failing disk for the end-to-end tests: an LD_PRELOAD library that
 * makes fsync(2), fdatasync(2) and syncfs(2) fail with EIO, or take
 * longer, for the files a test names (for syncfs, the file whose
 * descriptor names the file system), while the test says so. The program under test
 * (bitsd) runs unchanged; only the answers of those system calls
 * differ, as they would on a disk whose writeback fails or stalls.
 *
 * Control: the directory named by BITS_FAULT_DIR. While it holds a file
 *   sync-fail   every sync of a descriptor whose path contains the first
 *               line of that file fails with EIO (nothing is synced);
 *   sync-delay  every sync of a descriptor whose path contains its first
 *               line waits as many milliseconds as its second line says.
 * Removing the file ends the fault. Each injected fault appends a line to
 * BITS_FAULT_DIR/log.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);

/* The first two lines of DIR/NAME, or 0 when it does not exist. */
static int control(const char *name, char *pattern, size_t plen, long *number) {
    const char *dir = getenv("BITS_FAULT_DIR");
    if (!dir) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    snprintf(pattern, plen, "%s", buf);
    *number = nl ? strtol(nl + 1, NULL, 10) : 0;
    return pattern[0] != 0;
}

/* Whether the file behind fd has a path containing pattern. */
static int names(int fd, const char *pattern, char *target, size_t tlen) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, tlen - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return strstr(target, pattern) != NULL;
}

static void note(const char *what, const char *target) {
    const char *dir = getenv("BITS_FAULT_DIR");
    if (!dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/log", dir);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    char line[4200];
    int len = snprintf(line, sizeof line, "%s %s\n", what, target);
    if (len > 0) {
        ssize_t ignored = write(fd, line, (size_t)len);
        (void)ignored;
    }
    close(fd);
}

/* 0: go on with the real call; -1: fail it with EIO. */
static int inject(int fd) {
    char pattern[2048], target[4096];
    long number;
    if (control("sync-delay", pattern, sizeof pattern, &number) && names(fd, pattern, target, sizeof target)) {
        note("delay", target);
        struct timespec ts = {number / 1000, (number % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (control("sync-fail", pattern, sizeof pattern, &number) && names(fd, pattern, target, sizeof target)) {
        note("fail", target);
        errno = EIO;
        return -1;
    }
    return 0;
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (inject(fd) < 0) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (inject(fd) < 0) return -1;
    return real_fdatasync(fd);
}

int syncfs(int fd) {
    if (!real_syncfs) real_syncfs = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    if (inject(fd) < 0) return -1;
    return real_syncfs(fd);
}
