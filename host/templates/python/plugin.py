"""The tsuru service "{{name}}", as an Orizuru plugin.

A starting point: tsuru's fake API, made slightly useful. It offers one plan,
accepts every instance (with a size, its one parameter) and tells each bound
app which instance it got. Every method not written here answers what the SDK
defaults to; the SDK's guide (README.md of orizuru-sdk) lists them all and
the capabilities a plugin may be granted (logging, config and secrets,
key-value, SQL).
"""

from dataclasses import dataclass

import orizuru
from orizuru import AppBinding, Context, CreateRequest, Env, InfoItem, Instance, Invalid, Plan, Provisioned


@dataclass
class Parameters:
    """What `tsuru service instance add {{name}} NAME -p KEY=VALUE` may set.

    tsuru sends every value as text (`-p size_mb=256`); the SDK reads it as
    the declared type and refuses, naming it, a value that does not fit or a
    parameter not declared here.
    """

    # The instance's size, in MiB.
    size_mb: int = 128


class Plugin(orizuru.Service):
    def plans(self, context: Context) -> list[Plan]:
        """The plans `tsuru service info {{name}}` lists."""
        return [Plan("default", "The only plan, for now")]

    def create(self, request: CreateRequest) -> Provisioned:
        """A new instance: provision it here. Answer Provisioned.pending() when
        that finishes later; data=... is kept for later calls."""
        parameters = request.instance.parameters_as(Parameters)
        if not 1 <= parameters.size_mb <= 4096:
            raise Invalid(f"size_mb is {parameters.size_mb}; give a size from 1 to 4096 MiB")
        return Provisioned.ready(data=parameters)

    def info(self, instance: Instance, context: Context) -> list[InfoItem]:
        """Lines `tsuru service instance info` adds."""
        parameters = instance.data_as(Parameters) or Parameters()
        return [InfoItem("Size", f"{parameters.size_mb} MiB")]

    def bind_app(self, instance: Instance, app: AppBinding) -> Env:
        """The env vars an app bound to the instance gets."""
        return {"{{env}}_INSTANCE": instance.name, "{{env}}_APP": app.app_name}


orizuru.export(Plugin)
