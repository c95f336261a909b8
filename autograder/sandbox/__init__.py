"""Running untrusted student code: one child process per notebook, reached only through a proxy;
only JSON and numeric arrays cross, never pickle.

    errors.py   what can stop a call into student code (student-facing)
    limits.py   Limits (each declared once, with its help) and the submission's Budget
    wire.py     framing and codec, used by both sides
    jail.py     child isolation as root: rlimits, namespaces, masks, the uid drop (runs in the child)
    worker.py   the child's program: runs the cells, serves requests          (runs in the child)
    memory.py   MemoryCap: all of a sandbox's processes together (a cgroup, else a watchdog)
    child.py    one child process: spawn (bubblewrap when not root), uid, pipes, output, kill
    host.py     Sandbox: a notebook's children over time (restarts, budget, report)
    proxy.py    the Student protocol, its remote and in-process implementations
"""
