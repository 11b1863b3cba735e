"""The ``pixelforge`` command: info | demo | bench (train | sample | eval arrive with the models)."""
from __future__ import annotations

import argparse
import json
import sys
import time


def _cmd_info(args) -> int:
    from . import info  # noqa: PLC0415
    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    cpu, cuda = data["cpu"], data["cuda"]
    print(f"pixelforge {data['version']} (Python {data['python']})")
    if cpu["native"]:
        print(f"  CPU module : built; SIMD path {cpu['isa']} (processor supports {cpu['native_isa']}; "
              f"built {', '.join(cpu['built_isas'])}); {cpu['threads']} OpenMP threads")
    else:
        print("  CPU module : NOT built (reference and Numba paths only)")
    if cuda["built"]:
        print(f"  CUDA module: built for sm_{', sm_'.join(cuda['archs'])}; {cuda['devices']} device(s) visible")
    else:
        print("  CUDA module: not built")
    print(f"  numba      : {data['numba'] or 'not installed'}; numba-cuda: {data['numba_cuda'] or 'not installed'}")
    print(f"  cupy       : {data['cupy'] or 'not installed'}{' (GPU visible)' if data['cupy_gpu'] else ''}")
    return 0


def _cmd_demo(args) -> int:
    from . import demo  # noqa: PLC0415
    return demo.run(quick=args.quick)


def _cmd_bench(args) -> int:
    from . import demo  # noqa: PLC0415
    return demo.run(quick=args.quick, only=args.op)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pixelforge", description="pixelforge: fast image generation kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="what this installation can run")
    p.add_argument("--json", action="store_true", help="print the pf.info() dict as JSON")
    p.set_defaults(fn=_cmd_info)
    p = sub.add_parser("demo", help="the main job: run and time every kernel that exists")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    p.set_defaults(fn=_cmd_demo)
    p = sub.add_parser("bench", help="time each op for every built impl against NumPy/torch")
    p.add_argument("--op", default="all", help="one op name, or all")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(fn=_cmd_bench)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130
    finally:
        if args.command in ("demo", "bench"):
            print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
