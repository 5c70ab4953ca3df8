"""Only what pyproject.toml cannot say: the browser client goes into the wheel.

`web_client/` stays at the top of the checkout (it is a web root, not Python); building copies
it to `lpstream/web_client/`, where `lpstream.serve` finds it when installed from a wheel.
No npm assets are needed yet; when the client vendors some, they are fetched here too.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEB_CLIENT = Path(__file__).resolve().parent / "web_client"


class BuildPyWithWebClient(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install serves the checkout's web_client/
            return
        target = Path(self.build_lib) / "lpstream" / "web_client"
        for source in sorted(WEB_CLIENT.rglob("*")):
            if source.is_file():
                destination = target / source.relative_to(WEB_CLIENT)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildPyWithWebClient})
