"""The paper's downstream experiments: Cascade R-CNN mass localisation and DenseNet121 CXR classification."""
