"""Install tinygan: a GAN engine written from scratch on NumPy and CuPy."""
from setuptools import find_packages, setup

setup(
    name="tinygan",
    version="0.1.0",
    description="A GAN engine with hand-written backward passes, on NumPy (CPU) or CuPy (GPU).",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tinygan", "tinygan.*"]),
    package_data={"tinygan": ["mnist_data/*.gz", "mnist_data/*.md", "weights/*.npz", "weights/*.json"]},
    python_requires=">=3.9",
    install_requires=["numpy>=1.22", "matplotlib>=3.5", "tqdm>=4.60"],
    extras_require={
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=13"],
        "test": ["pytest>=7", "hypothesis>=6", "scipy>=1.7"],
        "dev": ["mutmut>=3.3"],  # mutation testing, run by hand (see docs/testing.md); not part of CI
        "oracle": ["torch>=2.0"],
    },
    license="MIT",
)
