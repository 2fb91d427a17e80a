/*
 * A slow disk for one process, made with LD_PRELOAD: fsync() and fdatasync() sleep first.
 *
 * Why an interposer: the fault harness needs a member whose every fsync takes hundreds of
 * milliseconds while its data stays on the same fast filesystem, so that only durability
 * waits get slower (a throttled block device or a FUSE filesystem would also slow reads and
 * writes, need root, and be shared by every member on the machine). The store calls
 * os.fsync/os.fdatasync, which go through the C library's fsync/fdatasync, so a shared
 * library loaded first can wrap them.
 *
 * How it is controlled: the environment variable KVSTORE_SLOW_FSYNC_FILE names a control
 * file, read on every call. When that file exists and holds a positive integer N, the call
 * sleeps N milliseconds and then calls the real function; otherwise it costs one failed
 * open(). The harness turns the delay on and off at run time by writing (atomically, by
 * rename) or deleting the file, without restarting the process.
 *
 * What is preserved: the real function's return value and errno; a successful call leaves
 * errno as the caller had it (the control file's open() may fail with ENOENT, which must
 * not leak into a caller that inspects errno).
 *
 * Build: cc -shared -fPIC -O2 -o libslowfsync.so slowfsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_ENV "KVSTORE_SLOW_FSYNC_FILE"

typedef int (*sync_fn)(int);

static sync_fn real_fsync;
static sync_fn real_fdatasync;

/* Resolved once at load time, before any thread of the program can call fsync. */
__attribute__((constructor)) static void resolve(void) {
    real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
}

/* The delay the control file asks for, in milliseconds (0: none or unreadable). */
static long delay_ms(void) {
    const char *path = getenv(CONTROL_ENV);
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    char *end;
    long ms = strtol(buf, &end, 10);
    return end != buf && ms > 0 ? ms : 0;
}

/* Sleep the whole delay even if signals interrupt it (nanosleep leaves what remains). */
static void sleep_ms(long ms) {
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static int slowed(sync_fn real, int fd) {
    int saved = errno;
    long ms = delay_ms();
    if (ms > 0) {
        sleep_ms(ms);
    }
    errno = saved;
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fsync(int fd) { return slowed(real_fsync, fd); }

int fdatasync(int fd) { return slowed(real_fdatasync, fd); }
