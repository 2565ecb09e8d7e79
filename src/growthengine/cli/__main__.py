"""``python -m growthengine.cli``: the ``growth`` program, as the engine starts its own processes (the child worker
of ``growth serve``, the benchmarks' servers). Running ``-m growthengine.cli.app`` instead would import that module
twice (once through this package) and print runpy's warning about it."""

from growthengine.cli.app import main

if __name__ == "__main__":
    main()
