/*
 * control.h - the local control socket ([proxy] control_socket): a unix
 * stream socket the main thread serves on its libev loop, and the
 * client the command line uses to talk to it
 * ("smtp-tls-proxy -c FILE memory list").
 *
 * Wire protocol, one command per connection:
 *
 *   request   one line of at most CONTROL_LINE_MAX (1024) octets, the
 *             "\n" included; a "\r" before the "\n" is ignored. Every
 *             other octet is printable ASCII (0x21-0x7e) or a blank (SP,
 *             HTAB). The line is split into words at runs of blanks
 *             (leading and trailing blanks ignored); the first word
 *             names the command, the others are its arguments.
 *   response  the first line is "ok" or "error REASON"; after "ok" come
 *             the command's body lines (each ending "\n"), after "error"
 *             nothing. The server closes the connection when the answer
 *             is written: EOF ends the body.
 *
 * Errors the server gives itself: "error request too long", "error
 * request is not printable ASCII", "error request ends without a
 * newline", "error request timed out", "error empty request (commands:
 * ...)", "error unknown command \"x\" (commands: ...)", "error permission
 * denied", "error busy (16 control connections)", "error answer too long
 * (more than 64 MiB)", "error out of memory". The command list is each
 * command's usage (its name when it has none), separated by "; ":
 * "(commands: memory list | memory forget ADDR|all; echo [WORD...])".
 *
 * Access: the socket is created mode 0600 (the file system lets only its
 * owner and root connect), and every connection's SO_PEERCRED uid must be
 * 0 or the proxy's effective uid; others get "error permission denied",
 * and a warning is logged.
 *
 * Bounds: CONTROL_CONNS_MAX connections at once (more are answered
 * "error busy ..." and closed at accept); the request must arrive within
 * CONTROL_READ_TIMEOUT seconds of the accept; an answer being written
 * may go CONTROL_WRITE_TIMEOUT seconds without progress before the
 * connection is dropped. Answers are written without blocking, so a slow
 * reader costs memory (at most CONTROL_OUT_MAX per connection), never
 * the main loop's time. Handlers themselves run on the main loop and
 * should be quick.
 *
 * Log: every request is one info line, "event=control command=memory
 * args=\"forget all\" result=ok uid=0" (result=error adds reason="...";
 * command=- when the request had none); refused peers are a warning,
 * "event=control_refused uid=N pid=N", and so is "event=control_busy".
 */
#ifndef SMTP_TLS_PROXY_CONTROL_H
#define SMTP_TLS_PROXY_CONTROL_H

#include <ev.h>
#include <stddef.h>
#include <stdio.h>

#include "core/buffer.h"

#define CONTROL_LINE_MAX 1024                 /* request octets, "\n" included */
#define CONTROL_OUT_MAX ((size_t)64 << 20)    /* body octets of one answer */
#define CONTROL_CONNS_MAX 16                  /* connections served at once */
#define CONTROL_READ_TIMEOUT 5.               /* seconds from accept to request */
#define CONTROL_WRITE_TIMEOUT 10.             /* seconds without write progress */
#define CONTROL_CLIENT_TIMEOUT 10             /* seconds without progress (client) */

/* The answer a handler builds. Append only with control_printf; the
 * fields are the server's. */
struct control_out {
    struct buffer body;
    int full;  /* an append would have passed CONTROL_OUT_MAX */
    int nomem; /* an append found no memory */
};

/* control_printf appends formatted text to |o|. Returns 1, or 0 when the
 * answer would pass CONTROL_OUT_MAX or memory ran out: the text is then
 * not appended, every later append fails too, and the command fails
 * with "error answer too long ..." or "error out of memory" whatever its
 * handler returns. */
int control_printf(struct control_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A command handler: |argv[0]| is the command word ("memory"), argc >= 1,
 * argv[argc] is NULL; the strings live until the handler returns. It
 * appends its answer text to |out| (lines ending "\n"; a missing final
 * "\n" is added). Returns 1 on success, 0 on failure: then |out| holds
 * the reason, one line (only its first line is sent; empty: "command
 * failed"). Runs on the main thread; it must not call control_stop. */
typedef int (*control_handler_fn)(void *arg, int argc, char **argv, struct control_out *out);

/* One command. |usage| is its whole synopsis, name included ("memory
 * list | memory forget ADDR|all"), as the command list shows it; NULL or
 * "": the name alone. The strings must outlive the server; the array
 * itself is copied. */
struct control_command {
    const char *name;
    control_handler_fn fn;
    void *arg;
    const char *usage;
};

struct control;

/* control_start creates the socket |path| (mode 0600) and serves
 * |commands| on |loop|. An existing |path| is replaced only when it is a
 * stale socket (connect is refused); a socket something answers on ("in
 * use by another process"), and anything that is not a socket, make it
 * fail. Returns the server, or NULL with |err| set. */
struct control *control_start(struct ev_loop *loop, const char *path,
                              const struct control_command *commands, size_t ncommands,
                              char *err, size_t errlen);

/* control_stop stops the watchers, closes every connection and the
 * socket, and unlinks |path| if it is still the socket control_start
 * made. NULL is fine. */
void control_stop(struct control *c);

/* control_client is the command line's side: connects to |path|, sends
 * argv[0..argc) as one request line, and copies the answer's body to
 * |out| or, on "error", the reason to |errout| as "smtp-tls-proxy:
 * REASON". Returns the exit code: 0 ok, 1 the command failed (or the
 * request cannot be sent: an argument with a blank or a byte that is not
 * printable ASCII, a line too long, a broken answer), 2 cannot connect
 * (the message names the socket and the error, and that the proxy must
 * be running with [proxy] control_socket). Gives up after
 * CONTROL_CLIENT_TIMEOUT seconds without progress. */
int control_client(const char *path, int argc, char **argv, FILE *out, FILE *errout);

#endif
