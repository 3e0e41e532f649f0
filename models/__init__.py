# Shipped weights and model cards. Installed as the package data `wakeword.models` (see pyproject.toml)
# so that a wheel install finds them too; nothing to import here.
