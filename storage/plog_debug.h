/*
 * plog_debug: hooks for tests of the partition log (fault injection at the disk boundary,
 * background-work barriers). Not for production callers.
 */
#ifndef RL_STORAGE_PLOG_DEBUG_H
#define RL_STORAGE_PLOG_DEBUG_H

struct plog;
struct storage;

/* The next write or fsync completion of `log` reports `err` (e.g. -EIO) instead of its real
 * result, as a failing disk would. */
void plog_debug_fail_next_io(struct plog *log, int err);

/* Blocks until the background thread has run every job queued so far (file removals). */
void storage_debug_sync_background(struct storage *st);

/* Segment descriptors currently open in the storage's cache. */
unsigned storage_debug_open_files(const struct storage *st);

/* Forgets every log closed cleanly, as a crash would: the next open of each recovers it as
 * after an unclean stop. */
void storage_debug_forget_clean(struct storage *st);

#endif
