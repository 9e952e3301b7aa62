"""Development entrypoint: ``python app.py`` serves on the embedded defaults; ``flask --app app`` finds ``create_app``."""
if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

from balance import create_app  # noqa: E402

if __name__ == "__main__":
    from balance.serve import main

    main()
