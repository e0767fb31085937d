"""Install tinygan: the metadata is in pyproject.toml; this file says which files make the package."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tinygan", "tinygan.*"]),
    package_data={"tinygan.data": ["mnist_data/*.gz", "mnist_data/*.md"], "tinygan.models": ["weights/*.npz", "weights/*.json"]},
)
