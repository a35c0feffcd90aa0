/*
 * svc: the contract between the server (broker/server) and the services below it
 * (broker/native, delivery, meta). A request handler gets a `struct svc_req` and asks the server
 * for what it needs through it (finish later, charge memory, may I still wait, who is the
 * peer) instead of calling up into the server: dependencies point down only.
 *
 *   server: frame -> struct req (embeds struct svc_req) -> native handler -> service
 *   service: ... async work ... -> svc_req_complete(r) -> the loop runs r->finish
 *
 * Ownership: the server owns the request; r->arena lives until the response has been sent and
 * every pending op of the request has ended (r->pending == 0), then r->release runs and the
 * arena is reset. A handler keeps its state in the arena (r->state) and counts each async op
 * it starts in r->pending, so a request whose connection goes away stays alive until its
 * appends, reads and timers complete.
 *
 * Single-threaded: everything here runs on the shard's loop thread.
 */
#ifndef RL_BROKER_SVC_SVC_H
#define RL_BROKER_SVC_SVC_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct io;
struct svc_req;

/* The server's side of the contract (one table per server, shared by its requests). */
struct svc_host {
    /* The async work of r is over: the loop calls r->finish soon, never inside this call.
     * Safe inside io callbacks. Does nothing once r's connection is gone. */
    void (*complete)(struct svc_req *r);
    /* Charges bytes to the broker's in-flight memory budget (max.inflight.bytes); they are
     * refunded when the request is freed. */
    void (*charge)(struct svc_req *r, uint64_t bytes);
    /* Would `bytes` more keep the broker within its memory budget? */
    bool (*has_room)(const struct svc_req *r, uint64_t bytes);
    /* May r still wait for something (a long poll)? False once its peer closed or the broker
     * is stopping: then it should answer with what it has. */
    bool (*may_wait)(const struct svc_req *r);
    /* The peer's address "host:port" (for messages); "" when unknown. */
    const char *(*peer)(const struct svc_req *r);
};

struct svc_req {
    const struct svc_host *host;
    struct arena *arena;     /* the request's memory: decode, handler state, response */
    struct io *io;           /* the shard's ring: clock, timers, reads */
    uint32_t pending;        /* async ops outstanding (the request lives while > 0) */
    void *state;             /* handler state, in the arena */
    void (*finish)(struct svc_req *r);  /* run by the loop after svc_req_complete */
    void (*release)(struct svc_req *r); /* frees what the handler holds outside the arena */
    /* Optional, for requests that wait (long polls): stop waiting and answer now (the peer is
     * closing, the broker stopping); and stop waiting for good, nothing will be sent (the
     * connection is gone). */
    void (*interrupt)(struct svc_req *r);
    void (*abandon)(struct svc_req *r);
};

static inline void svc_req_complete(struct svc_req *r)
{
    r->host->complete(r);
}

static inline void svc_req_charge(struct svc_req *r, uint64_t bytes)
{
    r->host->charge(r, bytes);
}

static inline bool svc_req_has_room(const struct svc_req *r, uint64_t bytes)
{
    return r->host->has_room(r, bytes);
}

static inline bool svc_req_may_wait(const struct svc_req *r)
{
    return r->host->may_wait(r);
}

static inline const char *svc_req_peer(const struct svc_req *r)
{
    return r->host->peer(r);
}

/* One async op of r has ended: when it was the last, the loop will run r->finish. */
static inline void svc_req_op_ended(struct svc_req *r)
{
    if (--r->pending == 0)
        svc_req_complete(r);
}

#endif
