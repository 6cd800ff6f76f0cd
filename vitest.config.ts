import { defineConfig } from "vitest/config";

export default defineConfig({
    test: {
        include: ["test/**/*.test.ts"],
        // Model tests load native models; two cores are shared by everything on CI machines.
        fileParallelism: false,
        testTimeout: 120_000,
        hookTimeout: 600_000,
        globalSetup: ["test/global-setup.ts"],
    },
});
