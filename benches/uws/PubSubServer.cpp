// The `uws-pubsub` server of scripts/bench.sh's `fanout` scenario (issue 13): every socket is
// subscribed to one topic, and every message received is published to that topic, to every
// socket including its sender (App::publish; WebSocket::publish would leave the sender out,
// and uWebSockets' broadcast_test expects its own message back too).
//
// Written for the benchmark, built by scripts/uws-build.sh against the uWebSockets sources of
// the crates.io package libuwebsockets-sys 0.0.10 (-DLIBUS_NO_SSL -DUWS_NO_ZLIB). Like the
// patched EchoServer, it listens on 127.0.0.1 at the port in $UWS_PORT (0, the default: the
// kernel picks one) and prints the port it got as its first line.
//
// Settings: uWebSockets' defaults (16 KiB messages, 120 s idle timeout with automatic Pings),
// except maxBackpressure, 1 MiB like the default budget of our hub's subscriber queues: a
// socket with more than that buffered gets no more messages (they are dropped for it) until it
// drains; it is not closed (closeOnBackpressureLimit stays false).

#include "App.h"

#include <cstdio>
#include <cstdlib>

int main() {
    struct PerSocketData {};
    const char *from_env = std::getenv("UWS_PORT");
    const int port = from_env ? std::atoi(from_env) : 0;

    uWS::App app;
    app.ws<PerSocketData>("/*", {
        .maxBackpressure = 1024 * 1024,
        .open = [](auto *ws) { ws->subscribe("broadcast"); },
        .message = [&app](auto * /*ws*/, std::string_view message, uWS::OpCode opCode) {
            app.publish("broadcast", message, opCode);
        },
    });
    app.listen("127.0.0.1", port, [port](auto *listen_socket) {
        if (!listen_socket) {
            std::fprintf(stderr, "uws-pubsub-server: cannot listen on 127.0.0.1:%d\n", port);
            std::exit(1);
        }
        std::printf("%d\n", us_socket_local_port(0, (struct us_socket_t *) listen_socket));
        std::fflush(stdout);
    });
    app.run();
}
