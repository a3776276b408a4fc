#!/usr/bin/env python3
"""Regenerate the pyhocon golden JSON for the Rust HOCON parser's tests.

Uses the pyhocon copy vendored by the Python agent (pip install clearml-agent==3.0.3), so run it
with a Python that can import clearml_agent:

    ${HOCON_PYTHON:-python3} scripts/hocon-goldens.py            # rewrite tests/fixtures/hocon/*.json
    ${HOCON_PYTHON:-python3} scripts/hocon-goldens.py --print F   # print the JSON for one file

The environment seen by substitutions is exactly tests/fixtures/hocon/env.json (the Rust test
passes the same map). pyhocon's to_json is not used directly: it writes periods (`10 seconds` at
the end of the input) as a Python repr, which is not JSON; such values are refused here.
"""
import json
import os
import sys
from collections import OrderedDict
from pathlib import Path

from clearml_agent.external.pyhocon import ConfigFactory
from clearml_agent.external.pyhocon.config_tree import ConfigTree, NoneValue

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hocon"


def plain(value, where):
    """Turn a resolved ConfigTree into JSON-ready values, keys unquoted as to_json does."""
    if isinstance(value, ConfigTree):
        return OrderedDict((str(k).strip('"'), plain(v, where)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v, where) for v in value]
    if value is None or isinstance(value, NoneValue):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    raise SystemExit("{}: value {!r} has no JSON form (a period?)".format(where, value))


def golden(path):
    return json.dumps(plain(ConfigFactory.parse_file(str(path)), path), indent=2, ensure_ascii=False) + "\n"


def set_env():
    env = json.loads((FIXTURES / "env.json").read_text())
    os.environ.clear()
    os.environ.update(env)


def main(argv):
    set_env()
    if len(argv) == 2 and argv[0] == "--print":
        sys.stdout.write(golden(Path(argv[1])))
        return
    if argv:
        raise SystemExit(__doc__)
    for conf in sorted(FIXTURES.glob("*.conf")):
        conf.with_suffix(".json").write_text(golden(conf))
        print("wrote", conf.with_suffix(".json").name)


if __name__ == "__main__":
    main(sys.argv[1:])
