"""A slow HTTP client, as an attacker holds a server's connections: it opens a connection and
sends a request head one byte at a time, never finishing it, and a second connection that sends
nothing. Prints, for each, whether the server closed it within the time given.

usage: slowloris.py PORT SECONDS
"""
import socket
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 10_000


def closed_by_server(connection, dribble):
    """True once the server closes (a read returns nothing, or a write fails)."""
    connection.settimeout(0.25)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        if dribble and sent < len(head):
            try:
                connection.send(head[sent:sent + 1])
                sent += 1
            except OSError:
                return True
        try:
            if connection.recv(4096) == b"":
                return True
        except socket.timeout:
            pass
        except OSError:
            return True
    return False


slow = socket.create_connection(("127.0.0.1", port))
silent = socket.create_connection(("127.0.0.1", port))
print("dribbling", "closed" if closed_by_server(slow, True) else "open")
print("silent", "closed" if closed_by_server(silent, False) else "open")

# The server still answers a client that sends its request whole.
whole = socket.create_connection(("127.0.0.1", port))
whole.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
answer = b""
while True:
    chunk = whole.recv(4096)
    if not chunk:
        break
    answer += chunk
print("whole", answer.split(b"\r\n", 1)[0].decode())
