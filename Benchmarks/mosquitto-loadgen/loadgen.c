/*
 * A load generator that is not Conduit's: libmosquitto clients measure any MQTT broker, so that
 * Conduit and mosquitto are compared by a client neither of them wrote.
 *
 *   loadgen fanin  HOST PORT PUBLISHERS MESSAGES QOS SIZE   P publishers -> 1 subscriber
 *   loadgen flight HOST PORT MESSAGES INFLIGHT QOS SIZE     1 publisher, INFLIGHT unacknowledged
 *   loadgen idle   HOST PORT CONNECTIONS SECONDS            hold idle connections open
 *
 * fanin and flight print one line: messages delivered, seconds, msg/s, and latency p50/p99 in
 * ms (publish call to the subscriber's callback, one clock). idle prints how many connected.
 * Build: cc -O2 -o loadgen loadgen.c -lmosquitto -lpthread
 */
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The subscriber's view: what arrived and how late. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long received = 0, expected = 0, acknowledged = 0;
static uint64_t *latencies = NULL;
static int subscribed = 0, connected_count = 0;

static void on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m; (void)u;
    uint64_t sent = 0;
    if (msg->payloadlen >= 8) memcpy(&sent, msg->payload, 8);
    uint64_t arrived = now_ns();
    pthread_mutex_lock(&lock);
    if (received < expected) latencies[received] = arrived - sent;
    received++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *granted) {
    (void)m; (void)u; (void)mid; (void)n; (void)granted;
    pthread_mutex_lock(&lock);
    subscribed = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_connect(struct mosquitto *m, void *u, int rc) {
    (void)m; (void)u;
    pthread_mutex_lock(&lock);
    if (rc == 0) connected_count++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_publish(struct mosquitto *m, void *u, int mid) {
    (void)m; (void)u; (void)mid;
    pthread_mutex_lock(&lock);
    acknowledged++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static struct mosquitto *client(const char *id, const char *host, int port) {
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    if (!m) { perror("mosquitto_new"); exit(2); }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    if (mosquitto_connect(m, host, port, 120) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect to %s:%d failed\n", host, port); exit(2); }
    if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "loop_start failed\n"); exit(2); }
    return m;
}

static int is_subscribed(void) { return subscribed; }
static long wanted_connections = 0;
static int all_connected(void) { return connected_count >= wanted_connections; }
static int all_delivered(void) { return received >= expected; }

/* Waits, the lock held between looks, until done() or `seconds` pass; returns whether done. */
static int wait_until(int (*done)(void), int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    int ok = 1;
    while (!done()) {
        if (pthread_cond_timedwait(&changed, &lock, &deadline) != 0) { ok = done(); break; }
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

static void report(const char *mode, double seconds) {
    long n = received < expected ? received : expected;
    qsort(latencies, (size_t)n, sizeof(uint64_t), compare_u64);
    double p50 = n ? latencies[(n - 1) / 2] / 1e6 : 0, p99 = n ? latencies[(long)((n - 1) * 0.99)] / 1e6 : 0;
    printf("%s delivered %ld/%ld in %.3f s: %.0f msg/s  latency ms p50 %.2f p99 %.2f\n", mode, received, expected, seconds,
           received / seconds, p50, p99);
}

static void publish(struct mosquitto *m, const char *topic, int qos, int size) {
    char *payload = calloc(1, (size_t)(size < 8 ? 8 : size));
    uint64_t t = now_ns();
    memcpy(payload, &t, 8);
    int rc;
    /* The client library queues when its own in-flight window is full. */
    while ((rc = mosquitto_publish(m, NULL, topic, size < 8 ? 8 : size, payload, qos, false)) == MOSQ_ERR_NOMEM) usleep(100);
    if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "publish: %s\n", mosquitto_strerror(rc)); exit(2); }
    free(payload);
}

static void raise_open_files(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) { limit.rlim_cur = limit.rlim_max; setrlimit(RLIMIT_NOFILE, &limit); }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: see the comment at the top of loadgen.c\n"); return 2; }
    const char *mode = argv[1], *host = argv[2];
    int port = atoi(argv[3]);
    mosquitto_lib_init();
    raise_open_files();
    char id[64], topic[64];
    snprintf(topic, sizeof topic, "loadgen/%d/%ld", (int)getpid(), (long)time(NULL));
    if (strcmp(mode, "fanin") == 0 && argc == 8) {
        int publishers = atoi(argv[4]), messages = atoi(argv[5]), qos = atoi(argv[6]), size = atoi(argv[7]);
        expected = (long)publishers * messages;
        latencies = calloc((size_t)expected, sizeof(uint64_t));
        snprintf(id, sizeof id, "loadgen-sub-%d", (int)getpid());
        struct mosquitto *sub = client(id, host, port);
        mosquitto_subscribe(sub, NULL, topic, qos);
        if (!wait_until(is_subscribed, 30)) { fprintf(stderr, "no SUBACK\n"); return 2; }
        struct mosquitto **pubs = calloc((size_t)publishers, sizeof *pubs);
        for (int i = 0; i < publishers; i++) {
            snprintf(id, sizeof id, "loadgen-pub-%d-%d", (int)getpid(), i);
            pubs[i] = client(id, host, port);
        }
        wanted_connections = publishers + 1;
        wait_until(all_connected, 60);
        uint64_t started = now_ns();
        for (int n = 0; n < messages; n++)
            for (int i = 0; i < publishers; i++) publish(pubs[i], topic, qos, size);
        wait_until(all_delivered, 120);
        report("fanin", (double)(now_ns() - started) / 1e9);
        return received == expected ? 0 : 1;
    }
    if (strcmp(mode, "flight") == 0 && argc == 8) {
        int messages = atoi(argv[4]), inflight = atoi(argv[5]), qos = atoi(argv[6]), size = atoi(argv[7]);
        expected = messages;
        latencies = calloc((size_t)expected, sizeof(uint64_t));
        snprintf(id, sizeof id, "loadgen-sub-%d", (int)getpid());
        struct mosquitto *sub = client(id, host, port);
        mosquitto_subscribe(sub, NULL, topic, qos);
        if (!wait_until(is_subscribed, 30)) { fprintf(stderr, "no SUBACK\n"); return 2; }
        snprintf(id, sizeof id, "loadgen-pub-%d", (int)getpid());
        struct mosquitto *pub = client(id, host, port);
        wanted_connections = 2;
        wait_until(all_connected, 60);
        uint64_t started = now_ns();
        for (long n = 0; n < messages; n++) {
            /* At most INFLIGHT published and not yet delivered. */
            pthread_mutex_lock(&lock);
            while (n - received >= inflight) pthread_cond_wait(&changed, &lock);
            pthread_mutex_unlock(&lock);
            publish(pub, topic, qos, size);
        }
        wait_until(all_delivered, 120);
        report("flight", (double)(now_ns() - started) / 1e9);
        return received == expected ? 0 : 1;
    }
    if (strcmp(mode, "idle") == 0 && argc == 6) {
        /* Plain sockets, not libmosquitto: its loop uses select(), which stops at 1,024 files. */
        int connections = atoi(argv[4]), seconds = atoi(argv[5]), made = 0;
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &address.sin_addr);
        for (int i = 0; i < connections; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); break; }
            /* CONNECT, MQTT 3.1.1, clean session, keep-alive 600 s, client id "idle-PID-N". */
            unsigned char packet[128];
            char client_id[48];
            int id_length = snprintf(client_id, sizeof client_id, "idle-%d-%d", (int)getpid(), i);
            unsigned char header[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x02, 0x58};
            int length = (int)sizeof header + 2 + id_length;
            packet[0] = 0x10;
            packet[1] = (unsigned char)length;
            memcpy(packet + 2, header, sizeof header);
            packet[2 + sizeof header] = 0;
            packet[3 + sizeof header] = (unsigned char)id_length;
            memcpy(packet + 4 + sizeof header, client_id, (size_t)id_length);
            if (write(fd, packet, (size_t)(2 + length)) != 2 + length) { perror("write"); break; }
            unsigned char ack[4];
            if (read(fd, ack, sizeof ack) == 4 && ack[0] == 0x20 && ack[3] == 0) made++;
        }
        printf("idle %d/%d connected\n", made, connections);
        fflush(stdout);
        sleep((unsigned)seconds);
        return made == connections ? 0 : 1;
    }
    fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
    return 2;
}
