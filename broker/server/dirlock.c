/*
 * dirlock: see dirlock.h.
 */
#include "broker/server/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

/* The pid of the process holding a write lock on fd's file, or 0 when F_GETLK cannot tell (the
 * holder exited meanwhile, or it is an OFD lock with no owner pid). */
static pid_t dirlock_holder(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_GETLK, &fl) || fl.l_type == F_UNLCK || fl.l_pid <= 0)
        return 0;
    return fl.l_pid;
}

int dirlock_acquire(const char *dir, char *err, size_t err_cap)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, DIRLOCK_FILE);
    /* No O_TRUNC: a process that does not get the lock must leave the holder's file alone. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, err_cap, "cannot open the data directory lock %s: %s", path,
                 rl_strerror(e));
        return e;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl)) {
        int e = errno;
        if (e != EAGAIN && e != EACCES) {
            close(fd);
            snprintf(err, err_cap, "cannot lock the data directory (%s): %s", path,
                     strerror(e));
            return -e;
        }
        pid_t holder = dirlock_holder(fd);
        close(fd);
        if (holder > 0)
            snprintf(err, err_cap, "data directory %s is in use by another ringlogd (pid %d "
                     "holds %s); stop that process first, or give this one its own --data-dir",
                     dir, (int)holder, path);
        else
            snprintf(err, err_cap, "data directory %s is in use by another ringlogd (it holds "
                     "%s); stop that process first, or give this one its own --data-dir", dir,
                     path);
        return RL_E_DATA_DIR_LOCKED;
    }
    /* Ours: record our pid for people and tools reading the file. */
    char line[32];
    int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)n, 0) != n) {
        int e = -errno;
        close(fd);
        snprintf(err, err_cap, "cannot write the data directory lock %s: %s", path,
                 rl_strerror(e));
        return e;
    }
    return fd;
}

void dirlock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
