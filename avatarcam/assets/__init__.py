"""Files the package ships: canonical face, default avatar."""
