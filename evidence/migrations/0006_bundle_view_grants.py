"""Bundles sealed before issue 16 get the object permissions the one access model reads:
`evidence.view_bundle` for the run's operator, and for the approvers' group on a bundle that
needed approval (auditors hold it on every bundle through their group)."""

from django.conf import settings
from django.db import migrations


def forwards(apps, schema_editor):
    Bundle = apps.get_model("evidence", "Bundle")
    if not Bundle.objects.exists():
        return
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    UserPerm = apps.get_model("guardian", "UserObjectPermission")
    GroupPerm = apps.get_model("guardian", "GroupObjectPermission")
    ct, _ = ContentType.objects.get_or_create(app_label="evidence", model="bundle")
    perm, _ = Permission.objects.get_or_create(
        content_type=ct, codename="view_bundle", defaults={"name": "Can view bundle"}
    )
    users = {u.username: u for u in User.objects.filter(
        username__in=set(Bundle.objects.values_list("operator_username", flat=True)))}
    approvers = None
    for bundle in Bundle.objects.only("pk", "operator_username", "verdict"):
        user = users.get(bundle.operator_username)
        if user is not None:
            UserPerm.objects.get_or_create(permission=perm, user=user, content_type=ct, object_pk=str(bundle.pk))
        if bundle.verdict == "needs_approval":
            approvers = approvers or Group.objects.get_or_create(name="approver")[0]
            GroupPerm.objects.get_or_create(permission=perm, group=approvers, content_type=ct, object_pk=str(bundle.pk))


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0005_bundle_approvals"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
