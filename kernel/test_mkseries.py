# SPDX-License-Identifier: GPL-2.0-only
"""Unit tests of kernel/mkseries.py's pure parts: python3 -m unittest discover -s kernel"""

import unittest

import mkseries as m


class Render(unittest.TestCase):
    def test_a_whole_line_placeholder_becomes_the_values_lines(self):
        text = "{\n@names@\n};\n"
        self.assertEqual(m.render(text, {"names": '\t"a",\n\t"b",\n'}, "t"), '{\n\t"a",\n\t"b",\n};\n')

    def test_an_empty_value_removes_the_line(self):
        self.assertEqual(m.render("a\n@gone@\nb\n", {"gone": ""}, "t"), "a\nb\n")

    def test_an_inline_placeholder_is_replaced_in_place(self):
        self.assertEqual(m.render("0, @flag@, NULL);\n", {"flag": "SLAB_NO_MERGE"}, "t"),
                         "0, SLAB_NO_MERGE, NULL);\n")

    def test_a_placeholder_without_a_value_is_an_error_naming_it(self):
        with self.assertRaisesRegex(m.DataError, "@flag@"):
            m.render("@flag@\n", {}, "t")

    def test_an_address_is_not_a_placeholder(self):
        self.assertEqual(m.render("M:\tkmt <kmt@example.invalid>\n", {}, "t"),
                         "M:\tkmt <kmt@example.invalid>\n")


class Insert(unittest.TestCase):
    def test_before_and_after_the_one_line_named(self):
        self.assertEqual(m.insert_block("a\nb\n", "X\n", {"before": "b"}, "t"), "a\nX\nb\n")
        self.assertEqual(m.insert_block("a\nb\n", "X\n", {"after": "b"}, "t"), "a\nb\nX\n")

    def test_a_line_found_twice_or_never_is_an_error(self):
        for text in ("a\na\n", "b\n"):
            with self.assertRaisesRegex(m.DataError, "exactly one line"):
                m.insert_block(text, "X\n", {"before": "a"}, "t")


class Diffs(unittest.TestCase):
    OLD = {"files/f": "".join(f"{i}\n" for i in range(40)), "files/g": "x\n"}

    def test_unapply_takes_back_what_make_diff_recorded(self):
        new = dict(self.OLD)
        lines = self.OLD["files/f"].splitlines(keepends=True)
        lines[2:3] = ["two\n", "more\n"]
        del lines[30]
        new["files/f"] = "".join(lines)
        new["files/g"] = "x\ny\n"
        new["files/h"] = "created later\n"
        diff = m.make_diff(self.OLD, new)
        back = m.unapply(new, diff, "d")
        del back["files/h"]
        self.assertEqual(back, self.OLD)

    def test_an_edit_the_diff_does_not_know_is_an_error(self):
        new = {"files/f": self.OLD["files/f"].replace("5\n", "five\n"), "files/g": "x\n"}
        diff = m.make_diff(self.OLD, new)
        edited = {"files/f": new["files/f"].replace("4\n", "four\n"), "files/g": "x\n"}
        with self.assertRaisesRegex(m.DataError, "does not match"):
            m.unapply(edited, diff, "d")


if __name__ == "__main__":
    unittest.main()
