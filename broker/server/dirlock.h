/*
 * dirlock: one ringlogd per data directory. Start-up path: ringlogd main -> shard_create ->
 * dirlock_acquire, before storage opens or recovers any log. A second broker on the same
 * directory would recover every log to its own view and, when it stopped, truncate the running
 * broker's active segment and mark it clean; so it must refuse to start, naming the process that
 * holds the directory, and touch nothing on the way out.
 *
 * The lock is a POSIX record lock (fcntl F_SETLK, write lock on the whole file) on
 * <data>/ringlogd.lock. The kernel drops it when the holder exits, however it exits (SIGKILL
 * included), so a stale file never blocks a restart. The holder writes its pid into the file for
 * people reading it; the refusing process takes the holder's pid from F_GETLK and writes nothing.
 */
#ifndef RL_BROKER_SERVER_DIRLOCK_H
#define RL_BROKER_SERVER_DIRLOCK_H

#include <stddef.h>

#define DIRLOCK_FILE "ringlogd.lock"

/* Locks the data directory dir (which must exist). Returns an open descriptor (>= 0) that holds
 * the lock until dirlock_release or exit; or RL_E_DATA_DIR_LOCKED when another process holds it
 * (err names that process and the directory), or -errno (err says what failed). Never truncates
 * or writes the file unless the lock was taken. Blocks briefly (file open, fcntl). */
int dirlock_acquire(const char *dir, char *err, size_t err_cap);

/* Releases the lock (closes fd; -1 is ignored). */
void dirlock_release(int fd);

#endif
