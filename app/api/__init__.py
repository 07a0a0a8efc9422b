"""HTTP routes. Routes validate, translate and delegate; they hold no domain logic."""
