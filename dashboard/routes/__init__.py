"""The dashboard's routes, one ``APIRouter`` per area; :func:`dashboard.app.create_app` includes them."""
