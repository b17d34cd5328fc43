"""`python -m nvcli ...` (and `torchrun -m nvcli train ...`) runs the nv command; so does the `nv` script."""
import sys


def _interrupted() -> None:
    sys.stderr.write("interrupted\n")
    sys.exit(130)


def main() -> None:
    """Run nv; Ctrl-C while its modules load ends quietly too (the command line's own handler is not set yet)."""
    try:
        from nvcli.cli import interrupt
    except KeyboardInterrupt:
        _interrupted()
    try:
        interrupt.install()  # before the commands' modules load: an interrupt mid-import is held, then raised
        from nvcli.cli.app import run
    except KeyboardInterrupt:
        interrupt.settle()
        _interrupted()
    run()


if __name__ == "__main__":
    main()
