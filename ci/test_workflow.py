# SPDX-License-Identifier: GPL-2.0-only
"""Checks of ci/github-actions.yml: python3 -m unittest discover -s ci -p 'test_*.py'"""

import os
import re
import unittest

WORKFLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "github-actions.yml")


class Workflow(unittest.TestCase):
    def test_the_github_kernel_caches_can_hit(self):
        """Regression: in a container job ${{ github.workspace }} is the runner host's path
        (actions/runner#2058), so a KMT_CACHE_DIR made from it was where no cache step looked,
        and every push built every kernel cold. Every job runs in a container, so none may use
        it (outside comments); $GITHUB_WORKSPACE is the container's path."""
        with open(WORKFLOW) as f:
            lines = f.read().splitlines()
        self.assertTrue(any(re.match(r"\s*container:", line) for line in lines))
        used = [
            f"line {n}: {line.strip()}"
            for n, line in enumerate(lines, 1)
            if not line.lstrip().startswith("#") and re.search(r"\$\{\{\s*github\.workspace", line)
        ]
        self.assertEqual(used, [])


if __name__ == "__main__":
    unittest.main()
