"""Jobs, schedules and sensors: what runs without anyone clicking."""
