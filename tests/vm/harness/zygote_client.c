// SPDX-License-Identifier: GPL-2.0
/*
 * Guest-side stand-in for bsradm/bsrsetup/bsrmeta/bsrcon in the test guests.
 *
 * Installed (as symlinks) under each tool's name ahead of the virtualenv on
 * the guest's PATH.  It hands its argv, environment, working directory and
 * fds 0-2 to zygote_server.py, which runs the tool's main() in a child forked
 * from an interpreter that has already imported everything, then exits with
 * the tool's status.  Signals it receives are forwarded to the tool.  When
 * the server is not there it execs the real console script from
 * $BSR_ZYGOTE_REAL instead, so a command never fails because of this shim.
 * The wire format is described in zygote_server.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static int sock = -1;

struct buf {
	char *data;
	size_t len, cap;
};

static void forward_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	ssize_t r = write(sock, &b, 1);

	(void)r;
}

static void die(const char *what)
{
	fprintf(stderr, "zygote_client: %s: %s\n", what, strerror(errno));
	exit(127);
}

static void put(struct buf *b, const char *s)
{
	size_t n = strlen(s) + 1;

	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			die("realloc");
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void put_int(struct buf *b, long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%ld", v);
	put(b, num);
}

static void run_real(const char *tool, char **argv)
{
	const char *dir = getenv("BSR_ZYGOTE_REAL");
	char path[4096];

	if (dir) {
		snprintf(path, sizeof(path), "%s/%s", dir, tool);
		execv(path, argv);
	}
	fprintf(stderr, "%s: zygote not running and $BSR_ZYGOTE_REAL/%s not runnable: %s\n",
		tool, tool, strerror(errno));
	exit(127);
}

static int connect_server(void)
{
	const char *path = getenv("BSR_ZYGOTE_SOCK");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A closed fd 0-2 would make the server's SCM_RIGHTS fail: use /dev/null. */
static void ensure_std_fds(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
			die("reopen std fd");
	}
}

static void send_request(const struct buf *b)
{
	int fds[3] = { 0, 1, 2 };
	char cbuf[CMSG_SPACE(sizeof(fds))] = { 0 };
	struct iovec iov = { .iov_base = b->data, .iov_len = b->len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	size_t off;
	ssize_t n;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	if (n < 0)
		die("sendmsg");
	for (off = (size_t)n; off < b->len; off += (size_t)n) {
		n = send(sock, b->data + off, b->len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n < 0)
			die("send");
	}
}

static int wait_status(void)
{
	int32_t status;
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(status)) {
		n = read(sock, (char *)&status + got, sizeof(status) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "zygote_client: server went away\n");
			return 255;
		}
		got += (size_t)n;
	}
	return status;
}

int main(int argc, char **argv)
{
	static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	const char *slash = strrchr(argv[0], '/');
	const char *tool = slash ? slash + 1 : argv[0];
	struct buf b = { 0 };
	struct sigaction sa = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
	char cwd[4096];
	uint32_t len;
	size_t i, envc = 0;

	ensure_std_fds();
	sock = connect_server();
	if (sock < 0)
		run_real(tool, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		strcpy(cwd, "/");
	b.cap = 4096;
	b.data = malloc(b.cap);
	if (!b.data)
		die("malloc");
	b.len = sizeof(len);	/* room for the length */
	put(&b, tool);
	put(&b, cwd);
	put_int(&b, argc);
	for (i = 0; i < (size_t)argc; i++)
		put(&b, argv[i]);
	while (environ[envc])
		envc++;
	put_int(&b, (long)envc);
	for (i = 0; i < envc; i++)
		put(&b, environ[i]);
	len = (uint32_t)(b.len - sizeof(len));
	memcpy(b.data, &len, sizeof(len));	/* little-endian hosts only */

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	send_request(&b);
	return wait_status();
}
