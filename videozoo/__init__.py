"""videozoo: video classification models with their published weights."""
