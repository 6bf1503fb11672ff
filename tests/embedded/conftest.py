# The campaign tests' small shop and its active model, for the embedded walk.
from tests.campaigns.conftest import active_model, shop  # noqa: F401
