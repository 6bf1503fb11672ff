from rest_framework.permissions import SAFE_METHODS, BasePermission


class ShopDataPermission(BasePermission):
    """Any signed-in token reads; writing needs the view's `write_permissions` (the integration role has them).

    Staff tokens exist for reading and testing; a write changes consent, unsubscribes and suppression,
    so it belongs to the shop's integrations (promo_site/roles.py) and admins.
    """

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or user.has_perms(view.write_permissions)
