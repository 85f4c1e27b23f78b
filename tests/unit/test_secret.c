/* Secrets (common/secret.h): equality that does not stop at the first
 * difference (timed: a wrong first byte and a wrong last byte cost the same
 * to within noise), files read trimmed and refused when empty, too long or
 * not printable -- without the refusal showing the file's bytes -- and
 * random tokens of 64 hex digits, different each time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/clock.h"
#include "common/secret.h"

static void check_equal(void) {
    CHECK(secret_equal("abc", "abc"), "equal");
    CHECK(!secret_equal("abd", "abc") && !secret_equal("ab", "abc") && !secret_equal("abcd", "abc"), "unequal");
    CHECK(!secret_equal("", "abc") && secret_equal("", ""), "empty");
    /* a mismatch in the first byte and in the last take the same time (the loop never stops early) */
    static char want[4097], first[4097], last[4097];
    memset(want, 'k', 4096), memcpy(first, want, 4097), memcpy(last, want, 4097);
    first[0] = 'x', last[4095] = 'x';
    double t_first = 1e9, t_last = 1e9;
    volatile int sink = 0;
    for (int rep = 0; rep < 50; rep++) {
        double t0 = clock_now_s();
        for (int i = 0; i < 200; i++) sink = sink + secret_equal(first, want);
        double t1 = clock_now_s();
        for (int i = 0; i < 200; i++) sink = sink + secret_equal(last, want);
        double t2 = clock_now_s();
        if (t1 - t0 < t_first) t_first = t1 - t0;
        if (t2 - t1 < t_last) t_last = t2 - t1;
    }
    CHECK(sink == 0, "a mismatch compared equal");
    printf("secret_equal on 4 KB: first byte wrong %.1f us, last byte wrong %.1f us (best of 50 x 200)\n",
           t_first * 1e6 / 200, t_last * 1e6 / 200);
    CHECK(t_first > 0.5 * t_last, "a first-byte mismatch returns early: %.2e s vs %.2e s", t_first, t_last);
}

static const char *write_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/facet-test-secret-%d-%s", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void check_files(void) {
    char out[SECRET_MAX];
    errbuf err;
    CHECK(secret_read_file(write_file("ok", "  s3cret-token\n"), out, sizeof out, &err) && strcmp(out, "s3cret-token") == 0,
          "trimmed: \"%s\" (%s)", out, err.msg);
    CHECK_ERR(secret_read_file(write_file("empty", " \n"), out, sizeof out, &err), err, "is empty");
    CHECK_ERR(secret_read_file(write_file("bin", "root:x:0:0 root\n"), out, sizeof out, &err), err, "printable ASCII");
    CHECK(!strstr(err.msg, "root:x"), "the refusal shows the file's bytes: %s", err.msg);
    char big[SECRET_MAX + 10];
    memset(big, 'a', sizeof big - 1), big[sizeof big - 1] = '\0';
    CHECK_ERR(secret_read_file(write_file("big", big), out, sizeof out, &err), err, "longer than");
    CHECK_ERR(secret_read_file("/nonexistent/secret", out, sizeof out, &err), err, "cannot read /nonexistent/secret");
    const char *names[] = {"ok", "empty", "bin", "big"};
    for (int i = 0; i < 4; i++) unlink(write_file(names[i], ""));
}

static void check_random(void) {
    char a[SECRET_MAX], b[SECRET_MAX];
    errbuf err;
    CHECK(secret_random(a, sizeof a, &err) && secret_random(b, sizeof b, &err), "random: %s", err.msg);
    CHECK(strlen(a) == 64 && strspn(a, "0123456789abcdef") == 64, "64 hex digits: %s", a);
    CHECK(strcmp(a, b) != 0, "two tokens differ");
}

int main(void) {
    check_equal();
    check_files();
    check_random();
    return CHECK_RESULT();
}
