/*
 * replay_main: runs a libFuzzer harness over its committed corpus without libFuzzer, so
 * `make test` checks every corpus file with the normal compiler (and under ASan in
 * `make test-asan`). Each file runs in a forked child, so one crashing input is reported by
 * name and the others still run; the last line is "N passed, N failed" for tests/run-tests.sh.
 *
 * Usage: replay_NAME [FILE|DIR ...]   (default: the corpus directory compiled in as
 * FUZZ_CORPUS_DIR, i.e. tests/fuzz/corpus/NAME/ of the source tree). An empty corpus is a
 * failure: a replay that checks nothing must not pass.
 */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FUZZ_CORPUS_DIR
#error "compile with -DFUZZ_CORPUS_DIR=\"path\""
#endif

/* Inputs larger than this are not corpus material (libFuzzer's default -max_len is 4 KiB). */
#define REPLAY_MAX_INPUT_BYTES (16u * 1024 * 1024)
/* A single input taking longer than this is a hang (generous for ASan builds). */
#define REPLAY_TIMEOUT_S 120
/* Files per directory; the committed corpus is far smaller (< 50). */
#define REPLAY_MAX_FILES 10000

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int passed, failed;

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)REPLAY_MAX_INPUT_BYTES) {
        rc = -EFBIG;
        goto out;
    }
    /* Exactly sized, so ASan flags any read past the input. */
    *len = (size_t)st.st_size;
    *out = malloc(*len ? *len : 1);
    if (!*out) {
        rc = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < *len) {
        ssize_t n = read(fd, *out + got, *len - got);
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            free(*out);
            goto out;
        }
        got += (size_t)n;
    }
out:
    close(fd);
    return rc;
}

static void run_one(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc) {
        printf("FAIL %s: cannot read (%s)\n", path, strerror(-rc));
        failed++;
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(REPLAY_TIMEOUT_S);
        LLVMFuzzerTestOneInput(data, len);
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        printf("FAIL %s: fork/wait failed\n", path);
        failed++;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
    } else {
        if (WIFSIGNALED(status))
            printf("FAIL %s: killed by signal %d\n", path, WTERMSIG(status));
        else
            printf("FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
        failed++;
    }
    free(data);
}

static int skip_entry(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        printf("FAIL %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_one(path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, skip_entry, alphasort);
    if (n < 0) {
        printf("FAIL %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        if (i < REPLAY_MAX_FILES) {
            char full[4096];
            snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
            run_one(full);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2)
        run_path(FUZZ_CORPUS_DIR);
    for (int i = 1; i < argc; i++)
        run_path(argv[i]);
    if (passed + failed == 0) {
        printf("FAIL: no corpus inputs found\n");
        failed = 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
