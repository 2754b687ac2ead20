// SPDX-License-Identifier: MIT
/*
 * Runs a guide snippet that needs huge pages: reserves them the way the
 * other tests do (tests/helpers.c: under the shared lock file, giving back
 * exactly what was added), runs the program, releases them. Exit status:
 * the program's, or 77 (skipped) when the pages cannot be had.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

int main(int argc, char **argv)
{
	long pages;
	pid_t pid;
	int status;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PAGES PROGRAM [ARGS...]\n", argv[0]);
		return 2;
	}
	pages = strtol(argv[1], NULL, 10);
	if (!hugetlb_reserve(pages))
		return 77;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execv(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	hugetlb_release();
	if (status == -1) {
		perror("fork/waitpid");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: killed by signal %d\n", argv[2],
			WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status);
}
