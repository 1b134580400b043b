/*
 * The test harness the C programs share: numbered "ok N - what" lines, and a "FAIL" line
 * with errno that ends the program at the first check that does not hold. The Rust test
 * (tests/c_program.rs) wants the closing "all N checks passed" line and no FAIL.
 */
#ifndef VSVA_CHECK_H
#define VSVA_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks;

static void pass(const char *what)
{
	printf("ok %d - %s\n", ++checks, what);
	fflush(stdout);
}

static void fail(const char *what, const char *why)
{
	printf("FAIL %d - %s: %s (errno %d %s)\n", checks + 1, what, why, errno, strerror(errno));
	fflush(stdout);
	exit(1);
}

/* The call succeeded. */
#define CHECK_OK(what, call) do { if ((call) < 0) fail(what, "failed"); pass(what); } while (0)
/* The call failed with errno `e`. */
#define CHECK_ERR(what, call, e) do { \
	errno = 0; \
	if ((call) != -1) fail(what, "succeeded"); \
	if (errno != (e)) fail(what, "wrong errno (wanted " #e ")"); \
	pass(what); } while (0)
/* The condition holds. */
#define CHECK(what, cond) do { if (!(cond)) fail(what, "condition false: " #cond); pass(what); } while (0)

/* The closing line the Rust test looks for. */
static void all_passed(void)
{
	printf("all %d checks passed\n", checks);
}

#endif
