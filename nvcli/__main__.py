"""`python -m nvcli ...` (and `torchrun -m nvcli train ...`) runs the nv command."""
from nvcli.cli.app import run

if __name__ == "__main__":
    run()
