"""One cold start, run as `python3.13 -I -S -B cold_child.py CONFIG.json` (stdlib only).

It does what Lambda's runtime does in a fresh sandbox: `sys.path` is the function's folder,
the layer and the runtime's own packages (nothing else: `-I -S` keeps the venv out), nothing
is written back as bytecode (`-B`, like the read-only /var/task and /opt), the handler module
is imported, then it answers one event. It writes its timings to the result path in CONFIG;
the handler's logs go to stdout, which the parent counts.
"""

import ast
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import time
import uuid

started = time.perf_counter()


class Context:
    # devstack.lambda_runtime.LambdaContext, restated: importing devstack (and PyYAML with it) would
    # add its own import time to the cold start this child process measures.
    def __init__(self, name, timeout_s, memory_mb):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def peak_rss_kb():
    """VmHWM: this process's own peak (ru_maxrss would carry the forking parent's across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def top_level_imports(module_name):
    """The modules a handler file imports at its top: importing them first separates import from init."""
    spec = importlib.util.find_spec(module_name)
    with open(spec.origin) as file:
        tree = ast.parse(file.read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def main():
    with open(sys.argv[1]) as file:
        config = json.load(file)
    sys.path[:0] = config["sys_path"]
    os.environ.update(config["env"])
    module_name, function_name = config["handler"].rsplit(".", 1)
    context = Context(config["function"], config["timeout_s"], config["memory_mb"])

    t0 = time.perf_counter()
    for name in top_level_imports(module_name):
        with contextlib.suppress(ImportError):  # `from package import name` where name is not a module
            importlib.import_module(name)
    t_imported = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), function_name)  # the module's own body: init
    t1 = time.perf_counter()
    response = handler(config["event"], context)
    t2 = time.perf_counter()

    status = response.get("statusCode") if isinstance(response, dict) else None
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    result = {
        "startup_ms": (t0 - started) * 1000,
        "import_ms": (t_imported - t0) * 1000,
        "init_ms": (t1 - t_imported) * 1000,
        "first_request_ms": (t2 - t1) * 1000,
        "status": status,
        "batch_item_failures": None if failures is None else len(failures),
        "max_rss_kb": peak_rss_kb(),
        "modules": len(sys.modules),
        "imported": {name: name in sys.modules for name in config.get("watch", [])},
    }
    with open(config["result"], "w") as file:
        json.dump(result, file)


main()
