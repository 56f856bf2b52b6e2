"""binary-models: binary neural networks for MXNet Gluon and GluonCV."""
from setuptools import setup, find_packages

setup(
    name="binary_models",
    version="0.1.0",
    description="Binary neural networks (MeliusNet, BinaryDenseNet, Bi-Real/ResNet-E, Tang et al.) for "
                "MXNet Gluon and GluonCV, with a packed xnor-gemm inference operator",
    packages=find_packages(include=["binary_models", "binary_models.*"]),
    python_requires=">=3.8",
    install_requires=[
        "mxnet==1.9.1",
        "numpy>=1.23,<1.24",
        "gluoncv==0.10.5.post0",
        "opencv-python<4.9",
        "matplotlib<3.9",
        "scikit-learn",
        "tqdm",
    ],
    extras_require={"test": ["pytest"]},
)
