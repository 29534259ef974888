// The tsuru service "{{name}}", as an Orizuru plugin.
//
// A starting point: tsuru's fake API, made slightly useful. It offers one
// plan, takes one parameter, accepts every instance and tells each bound app
// which instance it got. Every action not written here answers what the SDK
// defaults to; the SDK's guide (node_modules/orizuru-sdk/README.md) lists
// them all and the capabilities a plugin may be granted (logging, config and
// secrets, key-value, SQL).

import {
  type AppBinding,
  type Context,
  type CreateRequest,
  type Env,
  type Instance,
  type Plan,
  Invalid,
  Provisioned,
  Service,
  exportService,
} from "orizuru-sdk";
import { z } from "zod";

/**
 * What `tsuru service instance add {{name}} NAME -p KEY=VALUE` may set.
 * tsuru sends every value as text; the SDK reads `-p size_mb=256` as the
 * number 256, and refuses `-p size_mb=lots` or an undeclared parameter with
 * a sentence naming it.
 */
const Parameters = z.object({
  /** The size of the instance, in megabytes. */
  size_mb: z.int().default(64),
});

/** What the plugin keeps with each instance; later calls get it back. */
interface Data {
  size_mb: number;
}

class Plugin extends Service {
  /** The plans `tsuru service info {{name}}` lists. */
  override plans(_context: Context): Plan[] {
    return [{ name: "default", description: "The only plan, for now" }];
  }

  /**
   * A new instance: provision it here. Answer `Provisioned.pending()` when
   * that finishes later.
   */
  override create(request: CreateRequest): Provisioned {
    const { size_mb } = request.instance.parametersAs(Parameters);
    if (size_mb < 1 || size_mb > 4096) {
      throw new Invalid(`size_mb is ${size_mb}; give a size from 1 to 4096 megabytes`);
    }
    const data: Data = { size_mb };
    return Provisioned.ready().withData(data);
  }

  /** The env vars an app bound to the instance gets. */
  override bindApp(instance: Instance, app: AppBinding): Env {
    return { "{{env}}_INSTANCE": instance.name, "{{env}}_APP": app.appName };
  }
}

exportService(new Plugin());
