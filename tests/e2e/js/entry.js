// analytics.js 2.0 (Segment's browser SDK, from npm) as one file for the e2e page: the tests bundle it with esbuild
// at test time (no CDN: the SDK's lazily loaded parts go into the same file).
import { AnalyticsBrowser } from '@segment/analytics-next'

window.AnalyticsBrowser = AnalyticsBrowser
