import { ApplicationConfig, inject, provideAppInitializer, provideBrowserGlobalErrorListeners } from '@angular/core';
import { provideHttpClient, withFetch, withInterceptors } from '@angular/common/http';
import { provideRouter, withComponentInputBinding } from '@angular/router';

import { adminTokenInterceptor } from './api/admin-token';
import { routes } from './app.routes';
import { ConsoleSettings } from './shared/settings';

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideHttpClient(withFetch(), withInterceptors([adminTokenInterceptor])),
    provideRouter(routes, withComponentInputBinding()),
    // The runner's links are asked for once, at start, without holding the start up.
    provideAppInitializer(() => void inject(ConsoleSettings)),
  ],
};
