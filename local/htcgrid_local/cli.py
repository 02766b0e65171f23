"""placeholder"""
import argparse
from pathlib import Path
def main(argv=None):
    p=argparse.ArgumentParser(); sub=p.add_subparsers(dest="cmd", required=True)
    s=sub.add_parser("serve"); s.add_argument("--host", default="127.0.0.1"); s.add_argument("--port", type=int, default=0)
    s.add_argument("--region", default="us-east-1"); s.add_argument("--ready-file", type=Path); s.add_argument("--parent-pid", type=int)
    a=p.parse_args(argv)
    from htcgrid_local.server import serve
    serve(a.host, a.port, region=a.region, ready_file=a.ready_file, parent_pid=a.parent_pid)
