"""Creates (or resets) the demo users alice and bob: manage.py demo_users [--password P]."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = ("alice", "bob")


class Command(BaseCommand):
    help = "Create or reset the demo users alice and bob."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="herald-demo", help="their password (default: herald-demo)")

    def handle(self, *args, password: str, **options):
        User = get_user_model()
        for name in DEMO_USERS:
            user, created = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.save()
            self.stdout.write(f"{'created' if created else 'reset'} {name}")
