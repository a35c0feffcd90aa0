/*
 * bio: one background thread with a bounded queue of removal jobs (contract in bio.h). Where it
 * sits: under the partition log's retention, truncation and deletion paths.
 */
#include "storage/bio.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct bio_job {
    char *path;
    int recursive;
};

struct bio {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* the thread waits for jobs */
    pthread_cond_t cv_space; /* producers wait for a free slot or for drain */
    struct bio_job jobs[BIO_MAX_JOBS];
    unsigned head, count;
    uint64_t queued, done;
    bool stop;
};

static void bio_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        char child[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) < (int)sizeof(child) &&
                unlink(child) < 0 && errno != ENOENT)
                RL_WARN("bio: cannot remove %s: %s", child, strerror(errno));
        }
        closedir(d);
    }
    if (rmdir(path) < 0 && errno != ENOENT)
        RL_WARN("bio: cannot remove directory %s: %s", path, strerror(errno));
}

static void *bio_main(void *arg)
{
    struct bio *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->count == 0 && !b->stop)
            pthread_cond_wait(&b->cv_work, &b->mu);
        if (b->count == 0 && b->stop)
            break;
        struct bio_job job = b->jobs[b->head];
        b->head = (b->head + 1) % BIO_MAX_JOBS;
        b->count--;
        pthread_mutex_unlock(&b->mu);
        if (job.recursive)
            bio_remove_tree(job.path);
        else if (unlink(job.path) < 0 && errno != ENOENT)
            RL_WARN("bio: cannot remove %s: %s", job.path, strerror(errno));
        free(job.path);
        pthread_mutex_lock(&b->mu);
        b->done++;
        pthread_cond_broadcast(&b->cv_space);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int bio_create(struct bio **out)
{
    struct bio *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv_work, NULL);
    pthread_cond_init(&b->cv_space, NULL);
    int rc = pthread_create(&b->thread, NULL, bio_main, b);
    if (rc != 0) {
        free(b);
        return -rc;
    }
    *out = b;
    return 0;
}

void bio_destroy(struct bio *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_space);
    free(b);
}

int bio_remove(struct bio *b, const char *path, int recursive)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&b->mu);
    while (b->count == BIO_MAX_JOBS)
        pthread_cond_wait(&b->cv_space, &b->mu);
    b->jobs[(b->head + b->count) % BIO_MAX_JOBS] = (struct bio_job){copy, recursive};
    b->count++;
    b->queued++;
    pthread_cond_signal(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void bio_drain(struct bio *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t target = b->queued;
    while (b->done < target)
        pthread_cond_wait(&b->cv_space, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

uint64_t bio_jobs_done(struct bio *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->done;
    pthread_mutex_unlock(&b->mu);
    return n;
}
