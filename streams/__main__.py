"""``python -m streams worker -l info``: the Faust worker of motcua-pulse."""
from streams.app import app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
