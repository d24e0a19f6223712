// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmt-true - exit 0 at once: the program the `fork` workload of init execs in every round.
 *
 * Usage: kmt-true [ARG...]   (arguments are ignored)
 * Exit codes: 0 always.
 */
int main(void)
{
	return 0;
}
