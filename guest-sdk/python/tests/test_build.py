"""orizuru-build's checks and the world it writes, without building (the
conformance suite builds plugins/queue-python with it)."""

import contextlib
import io
import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from orizuru import _build  # noqa: E402


def run(*args: str) -> tuple[int, str]:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = _build.main(list(args))
    return code, errors.getvalue()


class Build(unittest.TestCase):
    def setUp(self):
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        self.dir = Path(scratch.name)
        (self.dir / "plugin.py").write_text("import orizuru\n")

    def test_bad_requests_get_a_sentence(self):
        out = str(self.dir / "p.wasm")
        cases = [
            ((str(self.dir / "none"), out), "the plugin directory"),
            ((str(self.dir), str(self.dir / "none" / "p.wasm")), "the output's directory"),
            ((str(self.dir), out, "--with", "logging,foo"), "--with foo is not a capability; give some of logging"),
            ((str(self.dir), out, "--with", "http"), "does not offer outbound HTTP"),
            ((str(self.dir), out, "--module", "orizuru"), "may not be named orizuru"),
            ((str(self.dir), out, "--module", "my-plugin"), "--module my-plugin is not a Python module name"),
            ((str(self.dir), out, "--module", "other"), "has no other.py (nor a package other/)"),
        ]
        for args, sentence in cases:
            with self.subTest(args=args):
                code, errors = run(*args)
                self.assertEqual(code, 1)
                self.assertIn(sentence, errors)
                self.assertEqual(errors.count("\n"), 1, errors)

    def test_the_world_imports_exactly_the_capabilities_chosen(self):
        _build._write_world(self.dir / "wit", _build.capabilities(" logging, keyvalue ,"))
        world = (self.dir / "wit" / "world.wit").read_text()
        self.assertIn("include orizuru:service/plugin@0.1.0;", world)
        self.assertIn("import wasi:logging/logging@0.1.0-draft;", world)
        self.assertIn("import wasi:keyvalue/atomics@0.2.0-draft;", world)
        self.assertNotIn("sql", world)
        self.assertTrue((self.dir / "wit" / "deps" / "orizuru-service" / "service.wit").is_file())
        self.assertTrue((self.dir / "wit" / "deps" / "logging").is_dir())


if __name__ == "__main__":
    unittest.main()
