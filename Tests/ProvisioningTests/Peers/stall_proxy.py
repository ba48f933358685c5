"""A TCP proxy in front of an AWS stand-in that can be made to hang, as an endpoint that accepts
connections and never answers does.

While CONTROL_FILE says "stall", connections are accepted and left unanswered (and any that
were passing through are cut, so a client's kept-alive connections are gone too); while it says
"pass", bytes go both ways to UPSTREAM_PORT, held connections included. Prints "ready" once
listening.

usage: stall_proxy.py PORT UPSTREAM_PORT CONTROL_FILE
"""
import socket
import sys
import threading
import time

port, upstream_port, control = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
passing = []
lock = threading.Lock()


def mode():
    try:
        with open(control) as f:
            return f.read().strip()
    except OSError:
        return "stall"


def pump(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    for s in (source, target):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def handle(client):
    while mode() != "pass":
        time.sleep(0.05)
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    with lock:
        passing.append((client, upstream))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    pump(upstream, client)


def watch():
    while True:
        if mode() != "pass":
            with lock:
                for pair in passing:
                    for s in pair:
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                passing.clear()
        time.sleep(0.05)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(512)
threading.Thread(target=watch, daemon=True).start()
print("ready", flush=True)
while True:
    connection, _ = listener.accept()
    threading.Thread(target=handle, args=(connection,), daemon=True).start()
