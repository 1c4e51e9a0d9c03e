// The patch library ships types for its core module only under the extensionless name;
// importing core.mjs directly keeps the unused duplex (observe/compare) code out of the bundle.
declare module "fast-json-patch/module/core.mjs" {
  export * from "fast-json-patch/module/core";
}
